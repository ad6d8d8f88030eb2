/* A shared library that is not a Fidius plugin: no fidius_get_registry. */
int not_a_plugin(void) { return 42; }
