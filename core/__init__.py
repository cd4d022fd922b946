"""The shared core: the weights contract and the inference engine.

Importing anything under `core` forces torch's weights-only loader for every `torch.load` in the
process (ours never call it; controlnet_aux's annotator loaders do), so no pickle can run code.
"""

import os

os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
