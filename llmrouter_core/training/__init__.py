"""Training machinery shared by the scorers: solvers, the dense projection, recipes, model
selection and cost models."""
