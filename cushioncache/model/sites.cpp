#include "cushioncache/model/sites.h"

#include "cushioncache/core/error.h"

namespace cushioncache {

const std::vector<Site>& all_sites() {
  static const std::vector<Site> sites = {Site::kBlockInput, Site::kAttnInput, Site::kQuery,
                                          Site::kKey,        Site::kValue,     Site::kAttnProbs,
                                          Site::kOProjInput, Site::kMlpInput,  Site::kDownProjInput};
  return sites;
}

const char* site_name(Site site) {
  switch (site) {
    case Site::kBlockInput: return "block_input";
    case Site::kAttnInput: return "attn_input";
    case Site::kQuery: return "query";
    case Site::kKey: return "key";
    case Site::kValue: return "value";
    case Site::kAttnProbs: return "attn_probs";
    case Site::kOProjInput: return "o_proj_input";
    case Site::kMlpInput: return "mlp_input";
    case Site::kDownProjInput: return "down_proj_input";
  }
  return "?";
}

Site parse_site(std::string_view name) {
  std::string valid;
  for (Site s : all_sites()) {
    if (name == site_name(s)) return s;
    valid += valid.empty() ? "" : ", ";
    valid += site_name(s);
  }
  throw_error(ErrorKind::kInvalidArgument, "site '{}' is not one of {}", name, valid);
}

}  // namespace cushioncache
