// Small self-contained SVG charts for reports: line charts (several series, linear or
// log-scale y, ticks at round values, axis titles and a legend) and heat maps (a grid of
// values per panel on one colour scale); readable without the data file.
#pragma once

#include <string>
#include <vector>

namespace cushioncache {

struct ChartSeries {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  bool dashed = false;
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;
  int width = 760;
  int height = 440;
};

// Non-finite points (and non-positive ones on a log scale) are skipped.
std::string line_chart_svg(const std::vector<ChartSeries>& series, const ChartOptions& options);

struct HeatmapPanel {
  std::string title;
  std::vector<std::vector<double>> values;  // [row][column]; rows may differ in length
};

struct HeatmapOptions {
  std::string title;
  std::string row_label;     // e.g. "layer", rows drawn top to bottom from 0
  std::string column_label;  // e.g. "head"
  std::string value_label;   // the colour bar's title
  double min = 0, max = 1;   // the colour scale; values outside are clamped
};

// Panels side by side on one shared colour scale (white = min, dark blue = max), so two
// runs compare at a glance; non-finite cells are grey.
std::string heatmap_svg(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options);

}  // namespace cushioncache
