# For every case of CASES (a |-separated list): `multopt_replay --params TYPE --master --emit`
# writes the master trajectory with the init rounded to TYPE; `--float --emit` on that output
# replays it from the same rounded start in float. The two texts (17 significant digits) must
# be equal: the master weights step exactly as a float optimizer's parameters.
#
#   cmake -DTOOL=<multopt_replay> -DTYPE=bf16|fp16 -DCASES=a|b|... -DWORK=<dir> -P replay_master.cmake
cmake_minimum_required(VERSION 3.21)

string(REPLACE "|" ";" cases "${CASES}")
file(MAKE_DIRECTORY ${WORK})
set(differ 0)
list(LENGTH cases count)
foreach(case IN LISTS cases)
  get_filename_component(name ${case} NAME_WE)
  execute_process(COMMAND ${TOOL} --params ${TYPE} --master --emit ${case}
                  OUTPUT_VARIABLE master RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(SEND_ERROR "${name}: --params ${TYPE} --master --emit exited with ${status}")
    math(EXPR differ "${differ} + 1")
    continue()
  endif()
  file(WRITE ${WORK}/${name}.${TYPE}.case "${master}")
  execute_process(COMMAND ${TOOL} --float --emit ${WORK}/${name}.${TYPE}.case
                  OUTPUT_VARIABLE single RESULT_VARIABLE status)
  if(NOT status EQUAL 0 OR NOT master STREQUAL single)
    message(SEND_ERROR "${name}: the ${TYPE} master trajectory differs from --float's from the same start "
                       "(${WORK}/${name}.${TYPE}.case)")
    math(EXPR differ "${differ} + 1")
  endif()
endforeach()
if(differ EQUAL 0)
  message(STATUS "${count} cases: the ${TYPE} master trajectory equals --float's, bit for bit")
endif()
