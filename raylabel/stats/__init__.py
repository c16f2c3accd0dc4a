"""The statistics behind trust: calibration, thresholds with lower bounds, stratified
sampling and estimates. numpy/scipy (and in-memory Arrow tables) only: no Ray, no I/O."""
