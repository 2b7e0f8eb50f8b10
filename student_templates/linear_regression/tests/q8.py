from otter.test_files import test_case

OK_FORMAT = False

name = "q8"
points = 2.0

@test_case(points=None, hidden=False)
def test_q8_returns_a_number(mse):
    import torch
    out = mse(torch.tensor(0.5), torch.tensor(0.0))
    assert isinstance(out, torch.Tensor) and out.dim() == 0, '`mse(w, b)` should return a one-number tensor'

@test_case(points=None, hidden=False)
def test_q8_tracks_gradients(mse):
    import torch
    w = torch.tensor(0.5, requires_grad=True)
    assert mse(w, torch.tensor(0.0)).requires_grad, 'the loss should track gradients: compute it from `w` and `b` with torch operations'

