# doppel_add_plugin(NAME <name> SOURCES <files...> [LIBRARIES <targets...>] [TEST_ONLY])
#
# Builds a plugin library libdoppel-<name>.so that the runtime loads with --plugin-dir,
# DOPPEL_PLUGIN_PATH or [pipeline] plugin_dirs. Also defines the object library
# doppel_plugin_<name>_objects, which unit tests link to run the plugin without loading it.
if(NOT DEFINED DOPPEL_PLUGIN_OUTPUT_DIR)
  set(DOPPEL_PLUGIN_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
endif()

function(doppel_add_plugin)
  cmake_parse_arguments(PLUGIN "TEST_ONLY" "NAME" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT PLUGIN_NAME OR NOT PLUGIN_SOURCES)
    message(FATAL_ERROR "doppel_add_plugin needs NAME and SOURCES")
  endif()
  set(objects doppel_plugin_${PLUGIN_NAME}_objects)
  add_library(${objects} OBJECT ${PLUGIN_SOURCES})
  set_target_properties(${objects} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${objects} PUBLIC doppel::sdk ${PLUGIN_LIBRARIES})
  if(TARGET doppel_warnings)
    target_link_libraries(${objects} PRIVATE doppel_warnings)
  endif()
  target_include_directories(${objects} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

  set(module doppel_plugin_${PLUGIN_NAME})
  add_library(${module} MODULE)
  target_link_libraries(${module} PRIVATE ${objects})
  # Only the descriptor is exported; everything else stays inside the library.
  set_target_properties(${module} PROPERTIES
    OUTPUT_NAME doppel-${PLUGIN_NAME}
    PREFIX lib
    LIBRARY_OUTPUT_DIRECTORY ${DOPPEL_PLUGIN_OUTPUT_DIR}
    BUILD_RPATH "$ORIGIN/../lib"
    INSTALL_RPATH "$ORIGIN/../..")
  if(PLUGIN_TEST_ONLY)
    return()
  endif()
  install(TARGETS ${module} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/doppel/plugins OPTIONAL)
  if(TARGET doppel)
    add_dependencies(doppel ${module})
  endif()
endfunction()
