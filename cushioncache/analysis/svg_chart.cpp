#include "cushioncache/analysis/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace cushioncache {
namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Round tick values spanning [lo, hi]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> linear_ticks(double lo, double hi) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / 6;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

std::string tick_label(double v, bool log_y) {
  if (log_y) {
    const int e = static_cast<int>(std::lround(std::log10(v)));
    return e >= -2 && e <= 4 ? fmt::format("{:g}", std::pow(10.0, e)) : fmt::format("1e{}", e);
  }
  return std::abs(v) >= 1e5 || (std::abs(v) < 1e-3 && v != 0) ? fmt::format("{:.0e}", v) : fmt::format("{:g}", v);
}

}  // namespace

std::string line_chart_svg(const std::vector<ChartSeries>& series, const ChartOptions& options) {
  // The legend sits right of the plot, so it never hides data.
  std::size_t longest_label = 0;
  for (const auto& s : series) longest_label = std::max(longest_label, s.label.size());
  const double legend_w = series.empty() ? 0 : 46 + 6.6 * static_cast<double>(longest_label);
  const double left = 78, right = 24 + (series.empty() ? 0 : legend_w + 12), top = 44, bottom = 58;
  const double width = options.width + (series.empty() ? 0 : legend_w + 12);
  const double plot_w = width - left - right, plot_h = options.height - top - bottom;
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!options.log_y || y > 0); };
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      const double y = options.log_y ? std::log10(s.y[i]) : s.y[i];
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  if (options.log_y) {
    ymin = std::floor(ymin);
    ymax = std::max(std::ceil(ymax), ymin + 1);
  } else {
    if (ymin > 0 && ymin < 0.3 * ymax) ymin = 0;  // anchor at zero when it is near
    if (ymax == ymin) ymax = ymin + 1;
    const double pad = 0.05 * (ymax - ymin);
    ymax += pad;
    if (ymin != 0) ymin -= pad;
  }
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * plot_w; };
  auto py = [&](double y) { return top + plot_h - ((options.log_y ? std::log10(y) : y) - ymin) / (ymax - ymin) * plot_h; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">{}</text>\n",
      width, options.height, width, options.height, left + plot_w / 2, escape(options.title));

  // Grid and y ticks.
  std::vector<double> yticks;
  if (options.log_y) {
    for (double e = ymin; e <= ymax + 1e-9; e += std::max(1.0, std::ceil((ymax - ymin) / 8))) yticks.push_back(std::pow(10.0, e));
  } else {
    yticks = linear_ticks(ymin, ymax);
  }
  for (double t : yticks) {
    const double y = py(t);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n", left, y, left + plot_w, y);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, y + 4, tick_label(t, options.log_y));
  }
  for (double t : linear_ticks(xmin, xmax)) {
    const double x = px(t);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#f0f0f0\"/>\n", x, top, x, top + plot_h);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x, top + plot_h + 18, tick_label(t, false));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", left, top, plot_w, plot_h);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", left + plot_w / 2, options.height - 14.0,
                     escape(options.x_label));
  svg += fmt::format("<text transform=\"translate(18 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n", top + plot_h / 2,
                     escape(options.y_label + (options.log_y ? " (log scale)" : "")));

  // Series, then the legend on top.
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* color = kColors[k % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string points;
    int drawn = 0;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
      ++drawn;
    }
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", color,
                       s.dashed ? " stroke-dasharray=\"6 4\"" : "", points);
    if (drawn <= 64) {  // markers only where they stay readable
      for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        if (usable(s.x[i], s.y[i]))
          svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(s.x[i]), py(s.y[i]), color);
    }
  }
  if (!series.empty()) {
    const double lx = left + plot_w + 12, ly = top;
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"white\" stroke=\"#999\"/>\n",
                       lx, ly, legend_w, 18.0 * static_cast<double>(series.size()) + 8);
    for (std::size_t k = 0; k < series.size(); ++k) {
      const char* color = kColors[k % (sizeof(kColors) / sizeof(kColors[0]))];
      const double y = ly + 16 + 18.0 * static_cast<double>(k);
      svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", lx + 8,
                         y - 4, lx + 30, y - 4, color, series[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", lx + 36, y, escape(series[k].label));
    }
  }
  svg += "</svg>\n";
  return svg;
}

std::string heatmap_svg(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options) {
  std::size_t rows = 0, columns = 0;
  for (const auto& p : panels) {
    rows = std::max(rows, p.values.size());
    for (const auto& r : p.values) columns = std::max(columns, r.size());
  }
  // Cells stay square and readable from 1 to ~100 rows.
  const double cell = std::clamp(480.0 / static_cast<double>(std::max<std::size_t>(rows, 1)), 6.0, 28.0);
  const double left = 64, top = 64, gap = 36, bar_w = 16, bottom = 48;
  std::size_t longest_title = 0;
  for (const auto& p : panels) longest_title = std::max(longest_title, p.title.size());
  // Wide enough for its title (about 6.6 px a character at 12 px), so titles never overlap.
  const double panel_w = std::max({cell * static_cast<double>(columns), 90.0, 6.6 * static_cast<double>(longest_title) + 8}),
               panel_h = cell * static_cast<double>(rows);
  const double bar_x = left + static_cast<double>(panels.size()) * (panel_w + gap);
  const double width = bar_x + bar_w + 90, height = top + panel_h + bottom;
  const double span = options.max > options.min ? options.max - options.min : 1.0;
  auto colour = [&](double v) {
    if (!std::isfinite(v)) return std::string("#bbbbbb");
    const double t = std::clamp((v - options.min) / span, 0.0, 1.0);
    // White to #08306b, linear in each channel.
    auto channel = [&](int lo) { return static_cast<int>(std::lround(255.0 + (lo - 255.0) * t)); };
    return fmt::format("#{:02x}{:02x}{:02x}", channel(0x08), channel(0x30), channel(0x6b));
  };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" "
      "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{:.1f}\" y=\"22\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">{}</text>\n",
      width, height, width, height, width / 2, escape(options.title));
  const std::size_t row_step = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(14.0 / cell)));
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const double x0 = left + static_cast<double>(p) * (panel_w + gap);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", x0, top - 10, escape(panels[p].title));
    for (std::size_t r = 0; r < panels[p].values.size(); ++r)
      for (std::size_t c = 0; c < panels[p].values[r].size(); ++c)
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{} {}, {} {}: {:.4g}</title></rect>\n",
                           x0 + cell * static_cast<double>(c), top + cell * static_cast<double>(r), cell, cell, colour(panels[p].values[r][c]),
                           escape(options.row_label), r, escape(options.column_label), c, panels[p].values[r][c]);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#333\"/>\n", x0, top,
                       cell * static_cast<double>(columns), panel_h);
    for (std::size_t c = 0; c < columns; c += std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(16.0 / cell))))
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x0 + cell * (static_cast<double>(c) + 0.5),
                         top + panel_h + 16, c);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x0 + cell * static_cast<double>(columns) / 2,
                       top + panel_h + 34, escape(options.column_label));
  }
  for (std::size_t r = 0; r < rows; r += row_step)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, top + cell * (static_cast<double>(r) + 0.5) + 4, r);
  svg += fmt::format("<text transform=\"translate(18 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n", top + panel_h / 2,
                     escape(options.row_label));
  // Colour bar: ten steps from max (top) to min (bottom).
  for (int i = 0; i < 10; ++i) {
    const double v = options.max - span * (i + 0.5) / 10;
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"{}\"/>\n", bar_x, top + panel_h * i / 10, bar_w,
                       panel_h / 10 + 0.5, colour(v));
  }
  svg += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#333\"/>\n", bar_x, top, bar_w, panel_h);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", bar_x + bar_w + 4, top + 10, tick_label(options.max, false));
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", bar_x + bar_w + 4, top + panel_h, tick_label(options.min, false));
  svg += fmt::format("<text transform=\"translate({:.1f} {:.1f}) rotate(90)\" text-anchor=\"middle\">{}</text>\n", bar_x + bar_w + 40,
                     top + panel_h / 2, escape(options.value_label));
  svg += "</svg>\n";
  return svg;
}

}  // namespace cushioncache
