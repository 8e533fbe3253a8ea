"""Step-up proofs (docs/semantics.md): a fresh tip signature (:mod:`.tip`), a signed push certificate
(:mod:`.pushcert`, with its replay store :mod:`.replay`), and what fresh means (:mod:`.freshness`).

Nothing is imported here: the judge needs the tip proof and freshness, and only signed pushes load the
certificate machinery.
"""
