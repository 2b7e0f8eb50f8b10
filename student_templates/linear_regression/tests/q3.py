from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 2.5

@test_case(points=None, hidden=False)
def test_q3_x(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'x', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q3_dy_tracks(dy):
    assert dy.requires_grad, '`dy` should still track gradients: pass create_graph=True'

@test_case(points=None, hidden=False)
def test_q3_d2_is_tensor(d2):
    import torch
    assert isinstance(d2, torch.Tensor) and d2.dim() == 0, '`d2` should be the one-number tensor autograd.grad gives'

