"""demos: the gallery of ch. 10's recurrent networks, drawn by viz from graphs tinygraph records.

Flow: tinygraph.tasks trains each architecture -> a short held-out pass is recorded ->
viz draws it folded, unfolded and with its gradients -> ``out/index.html``.
Run ``python -m demos`` (or ``make demo``).
"""
