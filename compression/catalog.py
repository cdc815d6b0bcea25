"""Names of everything a recipe can ask for. Import-light on purpose (no torch), so that the CLI can
parse, hash and serve a stored result without loading the deep-learning stack."""

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
IMAGEFOLDER = "imagefolder:"
MODELS: tuple[str, ...] = ("cnn", "resnet", "mobilenet", "resnet18", "mobilenet_v3_small")
PRETRAINABLE: tuple[str, ...] = ("resnet18", "mobilenet_v3_small")
STAGES: tuple[str, ...] = ("distill", "prune", "quant")
PRUNE_METHODS: tuple[str, ...] = ("l1-unstructured", "global-unstructured", "channel-l1", "channel-l2", "activation")
STRUCTURED_METHODS: tuple[str, ...] = ("channel-l1", "channel-l2", "activation")
MAX_PRUNE_RATIO = 0.95
