/* The public header compiles as strict C89 (ctest header_c89: -std=c89
 * -pedantic -Werror). */
#include <lariat/lariat.h>

int lariat_header_c89_check(void);
int lariat_header_c89_check(void) {
  lariat_frame f;
  f.opcode = LARIAT_OP_TEXT;
  return (int)f.opcode + LARIAT_ERR_FATAL * 0 + LARIAT_DEFER * 0;
}
