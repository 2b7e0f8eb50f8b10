from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 3.0

@test_case(points=None, hidden=False)
def test_q1_w(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'w', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q1_b(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'b', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q1_loss_is_a_scalar(loss):
    assert loss.dim() == 0, '`loss` should be one number: take the mean of the squared errors'

@test_case(points=None, hidden=False)
def test_q1_backward_called(env):
    import autograd_checks as ac
    ac.check_backward_called(env, 'w', of='loss')
    ac.check_backward_called(env, 'b', of='loss')

