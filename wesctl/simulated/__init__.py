"""Simulated providers: each speaks its provider's wire protocol on 127.0.0.1, so the real
client libraries talk to it (tests, benchmarks and `wesctl demo`). `http` is the shared server;
one module per provider mirrors `wesctl/providers/<name>/`.

They ship in the wheel because `wesctl demo` runs them: a Python extra can add dependencies but
not modules, and the demo must work from a plain install plus `[demo]` (which brings moto's S3
for HealthOmics outputs, imported only when the demo starts). No other command imports them.
"""
