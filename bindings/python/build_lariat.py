"""Generates the cffi extension `_lariat` from include/lariat/lariat.h.

The cdef is the public header itself, run through the C preprocessor, so
the binding cannot drift from the C ABI (STYLE.md section 15): nothing here
restates a lariat declaration. cffi's API mode then compiles the module
against the real header, so the compiler checks every struct layout and
signature the cdef claims.

Usage (CMake runs this): build_lariat.py --header H --include-dir D ...
    --cc CC --out-c FILE --build-info FILE
This writes the C source only; CMake compiles and links it against
liblariat, with the same compiler and flags as the rest of the tree.

pip (setup.py's cffi_modules) calls pkg_config_ffi() instead: the header,
include directories and library directory of an installed lariat come from
`pkg-config lariat` (PKG_CONFIG_PATH for a prefix of one's own), and the
module gets a RUNPATH to that library directory, so it needs no
LD_LIBRARY_PATH and nothing of the tree it was built in.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# Selects the header's own "LARIAT_EXTERN is empty" branch, and keeps
# attributes (e.g. a future deprecation macro) out of what cffi parses.
_DEFINES = {"LARIAT_STATICLIB": "", "__attribute__(x)": ""}

# cffi knows size_t and the <stdint.h> types but cannot parse libc's
# headers, so the system headers lariat.h includes are empty stubs. A new
# system include in lariat.h makes preprocessing fail here, on purpose.
_STUB_HEADERS = ("stddef.h", "stdint.h")

_INT_MACRO = re.compile(
    r"#define\s+(LARIAT_[A-Z0-9_]+)\s+\(?-?(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\)?\s*$")
# A function pointer declarator: "int (*init)(lariat_req *req, ...)".
_FUNC_PTR = re.compile(
    r"((?:const\s+)?\w+(?:\s*\*)*)\s*\(\s*\*\s*(\w+)\s*\)\s*\(([^()]*)\)")

# The cdef of the callbacks: one extern "Python" function per callback type
# the header declares, named py_<field>, so Python implements them with
# @ffi.def_extern(name="py_init") and so on.
CALLBACK_PREFIX = "py_"


def preprocess(header, include_dirs, cc="cc"):
    """Returns `cc -E -P -dD` of |header| with stubbed system headers."""
    with tempfile.TemporaryDirectory() as stubs:
        for name in _STUB_HEADERS:
            open(os.path.join(stubs, name), "w").close()
        cmd = [cc, "-E", "-P", "-dD", "-nostdinc", "-undef", "-I", stubs]
        for d in include_dirs:
            cmd += ["-I", d]
        cmd += ["-D%s=%s" % kv for kv in _DEFINES.items()]
        cmd.append(header)
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                              universal_newlines=True).stdout


def make_cdef(header, include_dirs, cc="cc"):
    """Returns the complete cdef text generated from |header|."""
    decls, macros = [], []
    for line in preprocess(header, include_dirs, cc).splitlines():
        if not line.startswith("#"):
            if line.strip():
                decls.append(line.strip())
            continue
        m = _INT_MACRO.match(line)
        if m and m.group(1) not in _DEFINES:
            # API mode: "..." makes the compiler supply the real value.
            macros.append("#define %s ..." % m.group(1))
    text = "\n".join(decls)
    callbacks = {}
    for ret, name, params in _FUNC_PTR.findall(" ".join(text.split())):
        callbacks.setdefault(name, 'extern "Python" %s %s%s(%s);' % (
            ret.strip(), CALLBACK_PREFIX, name, params.strip()))
    return "\n".join([text] + macros + sorted(callbacks.values())) + "\n"


def _c_string(text):
    # A C string literal that holds |text| exactly (json's escapes are C's,
    # given the text is ASCII; the header is).
    return json.dumps(text, ensure_ascii=True)


# The C half of lariat.asyncio (pyaq.c), which is the binding's own code,
# not lariat's: declared here, not generated from the header.
PYAQ_CDEF = """
typedef struct pyaq pyaq;
typedef struct pyaq_event {
  struct pyaq_event *next;
  uint64_t conn;
  int kind;
  size_t len;
  unsigned char *data;
} pyaq_event;
pyaq *pyaq_new(lariat_server *server, long max_queue, size_t write_limit);
int pyaq_fd(pyaq *aq);
void pyaq_del(pyaq *aq);
pyaq_event *pyaq_take(pyaq *aq);
void pyaq_free_events(pyaq_event *e);
int pyaq_attach(pyaq *aq, lariat_conn *conn);
void pyaq_detach(pyaq *aq, uint64_t id);
int pyaq_mark(pyaq *aq, uint64_t id, int kind);
void pyaq_consumed(pyaq *aq, uint64_t id, long n);
int pyaq_op(pyaq *aq, uint64_t id, int kind, uint16_t code,
            const char *topic, size_t tlen, const char *data, size_t len,
            void *py);
int pyaq_handle(lariat_conn *conn, const lariat_frame *frame, void *state);
int pyaq_info(lariat_conn *conn, void *msg, void *state);
int pyaq_drain(lariat_conn *conn, void *state);
"""
PYAQ_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "pyaq.c")


def build_ffi(cdef, **source_kwargs):
    import cffi
    ffi = cffi.FFI()
    # py_cdef() returns the cdef this module was built from, so a test can
    # compare it with the cdef of the current header.
    ffi.cdef(cdef + "const char *py_cdef(void);\n" + PYAQ_CDEF)
    with open(PYAQ_SOURCE) as f:
        pyaq = f.read()
    ffi.set_source(
        "_lariat",
        "#include <lariat/lariat.h>\n"
        "static const char *py_cdef(void) { return %s; }\n" % _c_string(cdef)
        + pyaq,
        **source_kwargs)
    return ffi


def _pkg_config(*args):
    cmd = [os.environ.get("PKG_CONFIG", "pkg-config")] + list(args) + \
        ["lariat"]
    try:
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit("cannot find lariat with %s (%s): install lariat "
                         "and set PKG_CONFIG_PATH to its lib/pkgconfig"
                         % (" ".join(cmd), exc))
    return out.split()


def pkg_config_ffi():
    """The FFI of an installed lariat, found with pkg-config (for pip)."""
    include_dirs = [f[2:] for f in _pkg_config("--cflags-only-I")]
    libdir = _pkg_config("--variable=libdir")[0]
    for d in include_dirs + ["/usr/local/include", "/usr/include"]:
        header = os.path.join(d, "lariat", "lariat.h")
        if os.path.exists(header):
            break
    else:
        raise SystemExit("pkg-config names no directory with lariat/lariat.h")
    cdef = make_cdef(header, include_dirs, os.environ.get("CC", "cc"))
    return build_ffi(cdef, include_dirs=include_dirs, library_dirs=[libdir],
                     libraries=["lariat"], runtime_library_dirs=[libdir])


def package_version():
    """The installed lariat's version, which the package takes."""
    return _pkg_config("--modversion")[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--header", required=True)
    p.add_argument("--include-dir", action="append", required=True)
    p.add_argument("--cc", default="cc")
    p.add_argument("--library", required=True,
                   help="liblariat.so, recorded for the symbol test")
    p.add_argument("--out-c", required=True)
    p.add_argument("--build-info", required=True)
    a = p.parse_args(argv)
    cdef = make_cdef(a.header, a.include_dir, a.cc)
    build_ffi(cdef).emit_c_code(a.out_c)
    with open(a.build_info, "w") as f:
        json.dump({"header": a.header, "include_dirs": a.include_dir,
                   "cc": a.cc, "library": a.library}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
