#!/usr/bin/env python3
"""Fails when an enum value of the public headers has no documentation:
Doxygen (1.9) warns about undocumented functions, types and members but
not about enum values. Reads Doxygen's XML output directory.

The values of enum lariat_error come from LARIAT_ERRNO_MAP, whose entries
each carry their text (lariat_strerror()): those count as documented. So
does a C++ value defined as a documented C value (`text = LARIAT_OP_TEXT`):
its documentation is that one's."""

import glob
import sys
import xml.etree.ElementTree as ET


def text(node):
    return "".join(node.itertext()).strip() if node is not None else ""


def documented(value):
    return bool(text(value.find("briefdescription")) or
                text(value.find("detaileddescription")))


def main(xml_dir):
    missing = []
    roots = [ET.parse(p).getroot() for p in glob.glob(xml_dir + "/*.xml")]
    c_documented = {v.findtext("name") for root in roots
                    for v in root.iter("enumvalue") if documented(v)}
    for root in roots:
        for enum in root.iter("memberdef"):
            if enum.get("kind") != "enum":
                continue
            name = enum.findtext("name")
            for value in enum.findall("enumvalue"):
                vname = value.findtext("name")
                if name == "lariat_error" or vname.startswith("LARIAT__"):
                    continue
                init = text(value.find("initializer")).lstrip("= ").strip()
                if not documented(value) and init not in c_documented:
                    loc = enum.find("location")
                    missing.append("%s:%s: enum value %s of %s is not "
                                   "documented" % (loc.get("file"),
                                                   loc.get("line"), vname,
                                                   name))
    for m in sorted(set(missing)):
        print(m, file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
