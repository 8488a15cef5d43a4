"""A Triton Python-backend model for ``signalml bench scale`` only: it stands
for a remote GPU whose answer takes a fixed time. Each request waits
``delay_s`` (a config parameter), then gets one deterministic score per row,
the mean of its features. Copied into the benchmark's own repository; never
part of a model set the project trains or publishes."""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.delay_s = float(config["parameters"]["delay_s"]["string_value"])

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            time.sleep(self.delay_s)
            rows = pb_utils.get_input_tensor_by_name(request, "FEATURES").as_numpy()
            score = rows.astype(np.float64).mean(axis=1, keepdims=True).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("SCORE", score)]))
        return responses
