"""The built-in model zoo: four classic CNNs as ONNX, with seeded weights instead of downloads.

The architectures follow torchvision (ResNet-18, SqueezeNet 1.1, MobileNetV2) and the MobileNetV1
paper, written the way torch.onnx.export writes an eval-mode model at opset 13 without constant
folding: Conv without bias followed by its own BatchNormalization, ReLU6 as Clip with min/max
inputs, GlobalAveragePool + Flatten + Gemm heads. Weights are He-initialised and BN statistics
sit near identity, so activations stay O(1) through the depth and logits are O(1-10): fp32
comparisons with a relative tolerance then mean something. numpy's legacy RandomState is used
because its stream is frozen across numpy versions, so the bytes of a model never change.
"""

import hashlib
import os

import numpy as np

from engine.errors import MixnnError

NAMES = ("resnet18", "mobilenet_v1", "mobilenet_v2", "squeezenet1_1")
VERSION = 2  # part of the cache key: bump when an architecture or its weights change
_SEEDS = {"resnet18": 1018, "mobilenet_v1": 2001, "mobilenet_v2": 2002, "squeezenet1_1": 3011}
_OPSET = 13
_IR_VERSION = 8


def input_shape(name):
    """The default input shape of a zoo model, used by benchmarks."""
    _check_name(name)
    return (1, 3, 224, 224)


def build(name):
    """Build the zoo model `name` as an onnx.ModelProto (deterministic: same bytes every time)."""
    _check_name(name)
    g = _GraphBuilder(name, _SEEDS[name])
    _ARCHITECTURES[name](g)
    return g.model()


def path(name, cache_dir=None):
    """Path of the zoo model's .onnx file, written once into the cache and reused after.

    A cached file is reused only when the sidecar `<name>.onnx.sha256` names the current
    version key and the file's content still has the recorded hash; otherwise it is rebuilt.
    Both files are written atomically, so concurrent callers never see a partial model.
    """
    _check_name(name)
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "mixnn", "zoo")
    os.makedirs(cache_dir, exist_ok=True)
    model_path = os.path.join(cache_dir, f"{name}.onnx")
    stamp_path = model_path + ".sha256"
    key = f"mixnn-zoo/{name}/v{VERSION}"
    if _cached_is_valid(model_path, stamp_path, key):
        return model_path
    data = build(name).SerializeToString()
    _write_atomically(model_path, data)
    _write_atomically(stamp_path, f"{key} {hashlib.sha256(data).hexdigest()}\n".encode())
    return model_path


def _check_name(name):
    if name not in NAMES:
        raise MixnnError(f"unknown zoo model {name!r}; the zoo has {', '.join(NAMES)}")


def _cached_is_valid(model_path, stamp_path, key):
    try:
        with open(stamp_path) as f:
            stamp_key, digest = f.read().split()
        with open(model_path, "rb") as f:
            actual = hashlib.sha256(f.read()).hexdigest()
    except (OSError, ValueError):
        return False
    return stamp_key == key and actual == digest


def _write_atomically(target, data):
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)


class _GraphBuilder:
    """Appends exporter-style nodes; each method takes and returns value names."""

    def __init__(self, name, seed):
        import onnx

        self.onnx = onnx
        self.name = name
        self.rng = np.random.RandomState(seed)
        self.nodes = []
        self.initializers = []
        self.relu6_bounds = None

    def _param(self, name, array):
        self.initializers.append(self.onnx.numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def _node(self, op, inputs, name, **attrs):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x, name, cin, cout, k, stride=1, group=1, bias=False, pad=None):
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        inputs = [x, self._param(f"{name}.weight", w)]
        if bias:
            inputs.append(self._param(f"{name}.bias", self.rng.uniform(-0.05, 0.05, cout)))
        return self._node("Conv", inputs, name, kernel_shape=[k, k], strides=[stride, stride],
                          pads=[k // 2 if pad is None else pad] * 4, group=group, dilations=[1, 1])

    def bn(self, x, name, c, gamma=1.0):
        params = [
            self._param(f"{name}.weight", gamma * self.rng.uniform(0.8, 1.2, c)),
            self._param(f"{name}.bias", self.rng.uniform(-0.1, 0.1, c)),
            self._param(f"{name}.running_mean", self.rng.uniform(-0.1, 0.1, c)),
            self._param(f"{name}.running_var", self.rng.uniform(0.8, 1.2, c)),
        ]
        return self._node("BatchNormalization", [x, *params], name, epsilon=1e-5, momentum=0.9)

    def relu(self, x, name):
        return self._node("Relu", [x], name)

    def relu6(self, x, name):
        if self.relu6_bounds is None:
            self.relu6_bounds = [self._param("relu6.min", np.array(0.0)),
                                 self._param("relu6.max", np.array(6.0))]
        return self._node("Clip", [x, *self.relu6_bounds], name)

    def add(self, a, b, name):
        return self._node("Add", [a, b], name)

    def max_pool(self, x, name, k, stride, pad=0, ceil_mode=0):
        return self._node("MaxPool", [x], name, kernel_shape=[k, k], strides=[stride, stride],
                          pads=[pad] * 4, ceil_mode=ceil_mode)

    def concat(self, xs, name):
        return self._node("Concat", xs, name, axis=1)

    def pool_flatten(self, x):
        return self._node("Flatten", [self._node("GlobalAveragePool", [x], "avgpool")],
                          "flatten", axis=1)

    def linear(self, x, name, cin, cout):
        w = self._param(f"{name}.weight", self.rng.standard_normal((cout, cin)) / np.sqrt(cin))
        b = self._param(f"{name}.bias", self.rng.uniform(-0.1, 0.1, cout))
        return self._node("Gemm", [x, w, b], name, alpha=1.0, beta=1.0, transB=1)

    def model(self):
        helper, tp = self.onnx.helper, self.onnx.TensorProto
        self.nodes[-1].output[0] = "output"
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("input", tp.FLOAT, ["N", 3, "H", "W"])],
            [helper.make_tensor_value_info("output", tp.FLOAT, ["N", 1000])],
            self.initializers)
        model = helper.make_model(graph, producer_name="mixnn.zoo", producer_version=str(VERSION),
                                  opset_imports=[helper.make_opsetid("", _OPSET)])
        model.ir_version = _IR_VERSION
        return model


def _conv_bn(g, x, name, cin, cout, k, stride=1, group=1, act="relu"):
    """conv -> bn -> activation, named as torchvision's Sequential children (.0, .1, .2)."""
    y = g.bn(g.conv(x, f"{name}.0", cin, cout, k, stride, group), f"{name}.1", cout)
    if act == "relu":
        return g.relu(y, f"{name}.2")
    return g.relu6(y, f"{name}.2") if act == "relu6" else y


def _resnet18(g):
    x = g.relu(g.bn(g.conv("input", "conv1", 3, 64, 7, 2), "bn1", 64), "relu")
    x = g.max_pool(x, "maxpool", 3, 2, pad=1)
    cin = 64
    for layer, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(2):
            p, s = f"layer{layer}.{block}", stride if block == 0 else 1
            y = g.bn(g.conv(x, f"{p}.conv1", cin, cout, 3, s), f"{p}.bn1", cout)
            y = g.relu(y, f"{p}.relu")
            # A smaller last gamma keeps the residual sum from doubling the variance per block.
            y = g.bn(g.conv(y, f"{p}.conv2", cout, cout, 3), f"{p}.bn2", cout, gamma=0.5)
            if s != 1 or cin != cout:
                x = g.bn(g.conv(x, f"{p}.downsample.0", cin, cout, 1, s), f"{p}.downsample.1", cout)
            x = g.relu(g.add(y, x, f"{p}.add"), f"{p}.relu_out")
            cin = cout
    g.linear(g.pool_flatten(x), "fc", 512, 1000)


def _mobilenet_v1(g):
    x = _conv_bn(g, "input", "model.0", 3, 32, 3, 2)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
        (1024, 2), (1024, 1)]
    cin = 32
    for i, (cout, stride) in enumerate(plan, start=1):
        x = _conv_bn(g, x, f"model.{i}.dw", cin, cin, 3, stride, group=cin)
        x = _conv_bn(g, x, f"model.{i}.pw", cin, cout, 1)
        cin = cout
    g.linear(g.pool_flatten(x), "fc", 1024, 1000)


def _mobilenet_v2(g):
    x = _conv_bn(g, "input", "features.0", 3, 32, 3, 2, act="relu6")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]
    cin, index = 32, 1
    for t, cout, n, s in settings:
        for i in range(n):
            stride, hidden, p = s if i == 0 else 1, cin * t, f"features.{index}.conv"
            y, j = x, 0
            if t != 1:
                y, j = _conv_bn(g, y, f"{p}.0", cin, hidden, 1, act="relu6"), 1
            y = _conv_bn(g, y, f"{p}.{j}", hidden, hidden, 3, stride, group=hidden, act="relu6")
            y = g.bn(g.conv(y, f"{p}.{j + 1}", hidden, cout, 1), f"{p}.{j + 2}", cout)
            x = g.add(x, y, f"features.{index}.add") if stride == 1 and cin == cout else y
            cin, index = cout, index + 1
    x = _conv_bn(g, x, f"features.{index}", cin, 1280, 1, act="relu6")
    g.linear(g.pool_flatten(x), "classifier.1", 1280, 1000)


def _fire(g, x, name, cin, squeeze, expand):
    s = g.relu(g.conv(x, f"{name}.squeeze", cin, squeeze, 1, bias=True),
               f"{name}.squeeze_activation")
    e1 = g.relu(g.conv(s, f"{name}.expand1x1", squeeze, expand, 1, bias=True),
                f"{name}.expand1x1_activation")
    e3 = g.relu(g.conv(s, f"{name}.expand3x3", squeeze, expand, 3, bias=True),
                f"{name}.expand3x3_activation")
    return g.concat([e1, e3], f"{name}.cat")


def _squeezenet1_1(g):
    x = g.relu(g.conv("input", "features.0", 3, 64, 3, 2, bias=True, pad=0), "features.1")
    x = g.max_pool(x, "features.2", 3, 2, ceil_mode=1)
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128),
             9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    for i in range(3, 13):
        if i in fires:
            x = _fire(g, x, f"features.{i}", *fires[i])
        else:
            x = g.max_pool(x, f"features.{i}", 3, 2, ceil_mode=1)
    x = g.relu(g.conv(x, "classifier.1", 512, 1000, 1, bias=True), "classifier.2")
    g.pool_flatten(x)


_ARCHITECTURES = {"resnet18": _resnet18, "mobilenet_v1": _mobilenet_v1,
                  "mobilenet_v2": _mobilenet_v2, "squeezenet1_1": _squeezenet1_1}
