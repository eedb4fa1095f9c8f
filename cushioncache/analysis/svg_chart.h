// Small self-contained SVG line charts for reports: several series, linear or log-scale
// y, ticks at round values, axis titles and a legend; readable without the data file.
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

}  // namespace cushioncache
