"""The binding cannot silently drift from include/lariat/lariat.h.

- The loaded module must have been generated from the header as it is now
  (a stale build fails here, before anything misbehaves at runtime).
- Every lariat_* function and LARIAT_* constant the Python code names must
  be declared in the header and (functions) exported by liblariat.so, the
  way curl's test1119 checks its symbols.
- The other way round: every function the header declares is used by the
  binding, or listed in NOT_WRAPPED with the reason, so a new function
  cannot be forgotten (issue 9: max_connections was).
"""

import glob
import json
import os
import re
import subprocess

import _lariat
import build_lariat
import lariat
from _lariat import ffi, lib

HERE = os.path.dirname(os.path.abspath(__file__))
PY_SOURCES = glob.glob(os.path.join(HERE, "..", "lariat", "*.py")) + \
    glob.glob(os.path.join(HERE, "..", "examples", "*.py"))

with open(os.path.join(os.path.dirname(_lariat.__file__),
                       "_lariat_build.json")) as f:
    BUILD = json.load(f)


def current_cdef(header=BUILD["header"]):
    return build_lariat.make_cdef(header, BUILD["include_dirs"], BUILD["cc"])


def used_names(text):
    """(functions, constants) the Python code takes from lib."""
    return (set(re.findall(r"\blib\.(lariat_\w+)", text)),
            set(re.findall(r"\blib\.(LARIAT_\w+)", text)))


# Header functions Python deliberately does not call, and why.
NOT_WRAPPED = {
    "lariat_conn_get_data": "the binding owns the state pointer (its "
                            "session handle); Python code has "
                            "Connection.state",
    "lariat_conn_set_data": "the binding owns the state pointer; "
                            "Connection.state is assignable",
    "lariat_conn_handler_data": "the binding's handler_data is its route "
                                "handle; the handler is `self` in Python",
    "lariat_conn_server": "Connection.server is the Python Server",
    "lariat_server_loop": "a uv_loop_t * is no use without a libuv "
                          "binding",
    "lariat_server_stop": "Server.stop() uses lariat_server_stop_async(), "
                          "valid on every thread, the loop's included",
}


def declared_functions(header_text):
    # As tests/check_symbols.sh reads the header.
    flat = " ".join(header_text.split())
    return set(re.findall(r"LARIAT_EXTERN [^(;]*?\b(lariat_\w+)\s*\(", flat))


def exported_functions(library):
    out = subprocess.run(["nm", "-D", "--defined-only", library], check=True,
                         stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def missing(python_text, header_text, cdef, exports):
    """Names the Python code uses that the header or library lacks."""
    functions, constants = used_names(python_text)
    declared = declared_functions(header_text)
    return sorted(
        ["%s: not declared" % f for f in functions - declared]
        + ["%s: not exported" % f for f in functions - exports]
        + ["%s: not in the module" % n for n in functions | constants
           if not hasattr(lib, n)]
        # Constants as the preprocessor sees them (LARIAT_ERR_##name).
        + ["%s: not in the header" % c for c in constants
           if not re.search(r"\b%s\b" % c, cdef)])


def read(path):
    with open(path) as f:
        return f.read()


def test_module_was_built_from_the_current_header():
    built = ffi.string(lib.py_cdef()).decode()
    assert built == current_cdef(), (
        "lariat.h changed since _lariat was generated: rebuild "
        "(cmake --build) so the binding follows the header")


def test_the_cdef_follows_header_edits(tmp_path):
    # The comparison above is only worth something if a header edit shows
    # in the generated cdef.
    header = tmp_path / "lariat.h"
    text = read(BUILD["header"])
    header.write_text(text.replace(
        "#ifdef __cplusplus\n}",
        "LARIAT_EXTERN int lariat_added(int x);\n#ifdef __cplusplus\n}"))
    edited = current_cdef(str(header))
    assert edited != current_cdef()
    assert "int lariat_added(int x);" in edited


def test_callbacks_have_the_header_signatures():
    fields = dict(ffi.typeof("lariat_handler").fields)
    assert "terminate" in lariat._CALLBACKS
    for name in lariat._CALLBACKS:
        assert name in fields, "lariat_handler has no field %s" % name
        assert ffi.typeof(getattr(lib, build_lariat.CALLBACK_PREFIX + name)) \
            is fields[name].type


def test_used_symbols_are_declared_and_exported():
    python_text = "".join(read(p) for p in PY_SOURCES)
    functions, constants = used_names(python_text)
    assert len(functions) > 40 and len(constants) > 5  # the scan works
    problems = missing(python_text, read(BUILD["header"]), current_cdef(),
                       exported_functions(BUILD["library"]))
    assert problems == []


def unwrapped(python_text, header_text, not_wrapped=NOT_WRAPPED):
    """Header functions neither used nor listed; listed ones that are
    used or no longer declared."""
    functions = used_names(python_text)[0]
    declared = declared_functions(header_text)
    return sorted(
        ["%s: declared, not wrapped" % f
         for f in declared - functions - set(not_wrapped)]
        + ["%s: listed as not wrapped, but used" % f
           for f in set(not_wrapped) & functions]
        + ["%s: listed as not wrapped, not declared" % f
           for f in set(not_wrapped) - declared])


def test_every_header_function_is_wrapped_or_listed():
    python_text = "".join(read(p) for p in PY_SOURCES)
    assert unwrapped(python_text, read(BUILD["header"])) == []


def test_the_wrap_check_catches_a_new_function():
    header = read(BUILD["header"]).replace(
        "#ifdef __cplusplus\n}",
        "LARIAT_EXTERN int lariat_added(int x);\n#ifdef __cplusplus\n}")
    python_text = "".join(read(p) for p in PY_SOURCES)
    assert unwrapped(python_text, header) == [
        "lariat_added: declared, not wrapped"]
    assert unwrapped(python_text + " lib.lariat_server_loop(p)",
                     read(BUILD["header"])) == [
        "lariat_server_loop: listed as not wrapped, but used"]


def test_the_symbol_check_catches_a_missing_function():
    args = (read(BUILD["header"]), current_cdef(),
            exported_functions(BUILD["library"]))
    assert missing("lib.lariat_post( lib.LARIAT_ERR_STOPPED", *args) == []
    assert missing("lib.lariat_gone(x) lib.LARIAT_GONE", *args) == [
        "LARIAT_GONE: not in the header", "LARIAT_GONE: not in the module",
        "lariat_gone: not declared", "lariat_gone: not exported",
        "lariat_gone: not in the module"]

