from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = [1, 1]

@test_case(points=None, hidden=False)
def test_q4_function_runs(env):
    import autograd_checks as ac
    ac.check_function(env, 'SQ')

@test_case(points=None, hidden=False)
def test_q4_gradcheck(env):
    import autograd_checks as ac
    ac.check_function_gradcheck(env, 'SQ')

