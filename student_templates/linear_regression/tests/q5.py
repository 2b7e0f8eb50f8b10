from otter.test_files import test_case

OK_FORMAT = False

name = "q5"
points = 2.0

@test_case(points=None, hidden=False)
def test_q5_dict(grads):
    assert isinstance(grads, dict) and set(grads) == {'w', 'b'}, '`grads` should be a dict with keys "w" and "b"'

@test_case(points=None, hidden=False)
def test_q5_floats(grads):
    assert all((isinstance(v, float) for v in grads.values())), 'the values of `grads` should be Python floats: use .item()'

