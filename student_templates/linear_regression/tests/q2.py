from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3.0

@test_case(points=None, hidden=False)
def test_q2_types(w_next, b_next):
    import torch
    assert isinstance(w_next, torch.Tensor) and isinstance(b_next, torch.Tensor), '`w_next` and `b_next` should be tensors'

@test_case(points=None, hidden=False)
def test_q2_not_tracked(w_next, b_next):
    assert not w_next.requires_grad and (not b_next.requires_grad), 'compute the step inside `with torch.no_grad():`'

@test_case(points=None, hidden=False)
def test_q2_lr(lr):
    assert lr == 0.1, 'keep the learning rate `lr = 0.1`'

@test_case(points=None, hidden=False)
def test_q2_scalars(w_next, b_next):
    assert w_next.dim() == 0 and b_next.dim() == 0, '`w_next` and `b_next` should be one number each, like `w` and `b`'

