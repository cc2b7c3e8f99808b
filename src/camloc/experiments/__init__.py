"""Experiments with known answers, apart from the library's data flow: the generated benchmarks
(Fashion-MNIST localization, the text detector, scenes, concepts, VQA) and the reproduction of the
paper's tables on CPU. They use the library (models, pipeline, boxes, metrics); nothing in the
library imports them."""
