/* The public header compiles as strict C99 (built with -std=c99 -pedantic
 * -Werror: a failure breaks the build). */
#include <lariat/lariat.h>

int lariat_header_c99_check(void);
int lariat_header_c99_check(void) {
  lariat_frame f = {LARIAT_OP_TEXT, 0, 0, 0, 0};
  return (int)f.opcode + LARIAT_VERSION_NUM * 0;
}
