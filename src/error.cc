// Error codes: names and strings come from the one LARIAT_ERRNO_MAP list in
// the public header; anything outside lariat's band is libuv's.
#include <lariat/lariat.h>
#include <uv.h>

extern "C" {

LARIAT_EXTERN const char *lariat_strerror(int error_code) {
  switch (error_code) {
#define LARIAT__ERR_STR(name, val, str) \
  case LARIAT_ERR_##name:               \
    return str;
    LARIAT_ERRNO_MAP(LARIAT__ERR_STR)
#undef LARIAT__ERR_STR
    case 0:
      return "success";
    default:
      break;
  }
  if (error_code <= -500 && error_code >= -599) return "unknown lariat error";
  return uv_strerror(error_code);
}

LARIAT_EXTERN const char *lariat_err_name(int error_code) {
  switch (error_code) {
#define LARIAT__ERR_NAME(name, val, str) \
  case LARIAT_ERR_##name:                \
    return "LARIAT_ERR_" #name;
    LARIAT_ERRNO_MAP(LARIAT__ERR_NAME)
#undef LARIAT__ERR_NAME
    case 0:
      return "OK";
    default:
      break;
  }
  if (error_code <= -500 && error_code >= -599) return "LARIAT_ERR_UNKNOWN";
  return uv_err_name(error_code);
}

LARIAT_EXTERN int lariat_is_fatal(int error_code) {
  return error_code <= LARIAT_ERR_FATAL && error_code >= -599;
}

}  // extern "C"
