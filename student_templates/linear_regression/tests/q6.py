from otter.test_files import test_case

OK_FORMAT = False

name = "q6"
points = 2.0

@test_case(points=None, hidden=False)
def test_q6_xs(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'xs', requires_grad=True, leaf=True, shape=(7,))

@test_case(points=None, hidden=False)
def test_q6_array(slopes):
    import numpy as np
    assert isinstance(slopes, np.ndarray) and slopes.shape == (7,), '`slopes` should be a NumPy array of 7 numbers'

@test_case(points=None, hidden=False)
def test_q6_grad_filled(xs):
    assert xs.grad is not None, 'call backward() on the sum so that `xs.grad` is filled'

