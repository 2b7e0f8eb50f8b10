from otter.test_files import test_case

OK_FORMAT = False

name = "q7"
points = 2.5

@test_case(points=None, hidden=False)
def test_q7_runs(env):
    import autograd_checks as ac
    ac.check_function(env, 'Mul')

