"""Tools: the plan of a run (memory, time), the µP coordinate check, the GPU check."""
