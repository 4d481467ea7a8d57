"""atheris harnesses for the pure modules that parse or escape what clients and the engine
send: `headers_target`, `disposition_target`, `multipart_target`.

Each is run as `python -m tests.fuzz.<name>_target [libFuzzer flags] [corpus dirs]` (`make
fuzz`; a short run of each is `test_fuzz_short.py`). An input is the text a peer would send,
followed by a few control bytes, so the seeds in `corpus/<name>/` are mostly readable: the
harnesses read them with FuzzedDataProvider.ConsumeIntInRange, which takes bytes from the
end (its ConsumeBool takes them from the start). Files here are not named `test_*` on purpose:
pytest must not collect the harnesses.
"""
