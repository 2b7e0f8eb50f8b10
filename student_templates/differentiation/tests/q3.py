from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = [0.25, 0.25, 0.5, 0]

@test_case(points=None, hidden=False)
def test_q3_x_tracks_gradients(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'x', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q3_y_from_x(env):
    import autograd_checks as ac
    ac.check_computed_from(env, 'y', 'x', scalar=True)

@test_case(points=None, hidden=False)
def test_q3_backward_called(env):
    import autograd_checks as ac
    ac.check_backward_called(env, 'x', of='y')

@test_case(points=None, hidden=False)
def test_q3_backward_ran_once(env):
    import autograd_checks as ac
    ac.check_backward_once(env, 'x', of='y')

