"""How a router learns: the parts its training is made of.

* :mod:`.recipes`: the training objectives (pointwise, pairwise, contrastive, online) that a
  scorer declares it accepts (``Tags.recipes``);
* :mod:`.costs`: the cost models (``"tokens"``, ``"features"``) that predict each model's
  cost per query;
* :mod:`.selection`: K-fold cross-validated AIQ, which chooses hyperparameters and the blend
  of a scorer with the per-model prior;
* :mod:`.projection`: the dense projection that latent-vector scorers read;
* :mod:`.solvers`: batched ridge and soft-label logistic paths, L-BFGS;
* :mod:`.torch`: PyTorch helpers of the network scorers (``torch`` extra).

This package imports nothing itself; import the submodule you need.
"""
