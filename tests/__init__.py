"""The test suite. Folders mirror the packages they test (measure/, store/, publish/,
connectors/); the tests of the whole (CLI, service, docs, packaging) and the shared
helpers (conftest, servers, sinks, ...) sit at the top."""
