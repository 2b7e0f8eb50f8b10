from otter.test_files import test_case

OK_FORMAT = False

name = "q5"
points = [0.25, 0.25, 0.5, 0.5, 0]

@test_case(points=None, hidden=False)
def test_q5_u_tracks_gradients(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'u', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q5_v_tracks_gradients(env):
    import autograd_checks as ac
    ac.check_tensor(env, 'v', requires_grad=True, leaf=True, shape=())

@test_case(points=None, hidden=False)
def test_q5_f_from_u_and_v(env):
    import autograd_checks as ac
    ac.check_computed_from(env, 'f', 'u', scalar=True)
    ac.check_computed_from(env, 'f', 'v', scalar=True)

@test_case(points=None, hidden=False)
def test_q5_backward_called(env):
    import autograd_checks as ac
    ac.check_backward_called(env, 'u', of='f')
    ac.check_backward_called(env, 'v', of='f')

@test_case(points=None, hidden=False)
def test_q5_backward_ran_once(env):
    import autograd_checks as ac
    ac.check_backward_once(env, 'u', of='f')
    ac.check_backward_once(env, 'v', of='f')

