# node-gyp build of the JPEG 2000 decoding addon (decoders/jpeg2000/native/) against the system
# libopenjp2 (Debian: libopenjp2-7-dev). Run by scripts/build-addon.mjs at npm install; the
# output, build/Release/iipsrv_openjpeg.node, is found by walking up to package.json.
{
  "targets": [
    {
      "target_name": "iipsrv_openjpeg",
      "sources": ["decoders/jpeg2000/native/openjpeg_addon.c"],
      "include_dirs": ["<!@(pkg-config --cflags-only-I libopenjp2 2>/dev/null | sed -e 's/-I//g' || echo /usr/include/openjpeg-2.5)"],
      "libraries": ["<!@(pkg-config --libs libopenjp2 2>/dev/null || echo -lopenjp2)"],
      "cflags": ["-O2", "-std=c99", "-Wall"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
