// A shared library that is not a doppel plugin.
extern "C" __attribute__((visibility("default"))) int not_a_plugin() { return 42; }
