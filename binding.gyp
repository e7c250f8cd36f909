{
  "targets": [
    {
      "target_name": "vhostscope_native",
      "sources": [
        "native/addon.cc",
        "native/channel.cc",
        "native/closer.cc",
        "native/framing.cc",
        "native/listener.cc",
        "native/sys.cc",
        "native/fdinfo.cc",
        "native/relay.cc",
        "native/poll_ring.cc",
        "native/rings.cc",
        "native/guest_memory.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
