"""The .mixnn flatbuffers schema (mixnn.fbs) and the Python code flatc generates from it
(mixnn_generated.py; regenerate with regen.sh, never edit by hand)."""
