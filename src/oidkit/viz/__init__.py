"""Seeing inside a model: attention maps, per-token loss, training curves.

Every page is one self-contained HTML file (data and images embedded, no network), next to PNGs:

- ``oidkit.viz.attention.write_attention``: attention probabilities per layer and head;
- ``oidkit.viz.tokens.write_token_loss``: each token coloured by how surprised the model is by it;
- ``oidkit.viz.curves.write_curves``: loss, learning rate and throughput from a run's ``metrics.csv``.
"""
