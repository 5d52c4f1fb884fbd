"""Programs built on pykue: the seed's notification pipeline, the demo, the HTTP services."""
