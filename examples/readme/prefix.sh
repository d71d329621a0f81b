# In the lariat checkout, after `cmake --build build`: install into a
# prefix of your own and build against it from there.
PREFIX=${PREFIX:-$HOME/opt/lariat}
cmake --install "${BUILD:-build}" --prefix "$PREFIX"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"

# The tools (lariat-echo, lariat-cat, lariat-chat) find liblariat.so by
# themselves (RUNPATH $ORIGIN/../lib): "$PREFIX/bin/lariat-echo --port 8080".
ldd "$PREFIX/bin/lariat-echo" | grep liblariat

# A C program: -Wl,-rpath does the same for it (or run it with
# LD_LIBRARY_PATH="$PREFIX/lib").
cc -o "$PREFIX/bin/readme-echo" examples/readme/echo.c \
  $(pkg-config --cflags --libs lariat) \
  -Wl,-rpath,"$(pkg-config --variable=libdir lariat)"

# Python: pip builds the binding against this prefix, into a venv.
python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --no-build-isolation ./bindings/python
"$PREFIX/venv/bin/python" -c 'import lariat.asyncio; print(lariat.version())'
