"""Step-up proofs (docs/semantics.md): a fresh tip signature (:mod:`.tip`), a signed push certificate
(:mod:`.pushcert`, with its replay store :mod:`.replay`), what fresh means (:mod:`.freshness`), and who
counts: once per person, bound to the pusher (:mod:`.signers`).

Nothing is imported here: the judge needs the tip proof, freshness and the count, and only signed pushes
load the certificate machinery.
"""
