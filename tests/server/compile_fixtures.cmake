# Compiles the fixture checkpoints the server tests serve: cmake -DDSCC=... -DOUT=... -DFIXTURES=... -P this
file(MAKE_DIRECTORY ${OUT})
foreach(name qwen2-tiny-r1 qwen2-tiny-tied)
  execute_process(COMMAND ${DSCC} compile ${FIXTURES}/${name} -o ${OUT}/${name}.dsplan --target cpu
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dscc compile ${name} failed (${rc}):\n${err}")
  endif()
endforeach()
