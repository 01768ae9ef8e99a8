import pytest
import torch
from torch import nn

from es_opt import Model, SamplingStrategy


class WithOwnParam(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        self.body = nn.Linear(2, 3)
        self.act = nn.ReLU()
        self.head = nn.Linear(3, 1)
        self.register_buffer("counter", torch.zeros(1))

    def forward(self, x):
        return self.head(self.act(self.body(self.frozen(x)))) * self.scale


def test_layers_are_children_with_trainable_params_in_order():
    model = Model(WithOwnParam())
    assert [layer.name for layer in model.layers] == ["", "body", "head"]
    assert model.layers[1].names == ("body.weight", "body.bias")
    assert "frozen.weight" not in model.named_trainable_parameters()
    assert "counter" not in model.named_trainable_parameters()


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(2, 2)
        self.decode = nn.Linear(2, 2, bias=False)
        self.decode.weight = self.encode.weight  # tied: decode has no parameter of its own


def test_a_tied_parameter_belongs_to_the_first_layer_that_holds_it():
    model = Model(Tied(), SamplingStrategy.BOTTOM_UP)
    assert [(layer.name, layer.names) for layer in model.layers] == [
        ("encode", ("encode.weight", "encode.bias"))
    ]
    assert model.selected_names(1, seed=0) == ("encode.weight", "encode.bias")


def test_call_and_forward_call_the_net():
    net = nn.Linear(2, 1)
    model = Model(net)
    x = torch.ones(1, 2)
    assert torch.equal(model(x), net(x)) and torch.equal(model.forward(x), net(x))


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (SamplingStrategy.ALL, [[0, 1, 2]] * 7),
        (SamplingStrategy.BOTTOM_UP, [[0], [1], [2], [0], [1], [2], [0]]),
        (SamplingStrategy.TOP_DOWN, [[2], [1], [0], [2], [1], [0], [2]]),
    ],
)
def test_strategy_visits_layers_in_documented_order(strategy, expected):
    model = Model(WithOwnParam(), strategy)
    assert [model.selected_layers(t, seed=0) for t in range(7)] == expected


def test_random_strategy_is_reproducible_and_covers_layers():
    model = Model(WithOwnParam(), "random")
    first = [model.selected_layers(t, seed=4)[0] for t in range(60)]
    assert first == [model.selected_layers(t, seed=4)[0] for t in range(60)]
    assert first != [model.selected_layers(t, seed=5)[0] for t in range(60)]
    assert set(first) == {0, 1, 2}


def test_selected_names_follow_layers():
    model = Model(WithOwnParam(), SamplingStrategy.TOP_DOWN)
    assert model.selected_names(0, 0) == ("head.weight", "head.bias")
    assert model.selected_names(2, 0) == ("scale",)


def test_errors():
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        Model("not a net")
    with pytest.raises(ValueError, match="strategy must be one of"):
        Model(nn.Linear(1, 1), "sideways")
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Model(frozen)
