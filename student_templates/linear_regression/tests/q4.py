from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 2.5

@test_case(points=None, hidden=False)
def test_q4_layer(layer):
    import torch
    assert isinstance(layer, torch.nn.Linear), '`layer` should be a torch.nn.Linear'

@test_case(points=None, hidden=False)
def test_q4_shape(layer):
    assert layer.in_features == 2 and layer.out_features == 1, 'the layer takes 2 inputs and gives 1 output'

@test_case(points=None, hidden=False)
def test_q4_backward(env):
    import autograd_checks as ac
    ac.check_backward_called(env, 'layer.weight', of='out')

