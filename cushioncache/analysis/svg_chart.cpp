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

}  // namespace cushioncache
