"""Canvas download file names and Moodle download folder names -> StudentRef."""

import unicodedata

import pytest

from autograder.lms_names import parse_canvas_name, parse_moodle_folder, split_attempt
from autograder.results import StudentRef


def canvas(key, login, sub, original, late=False, attempt=0):
    return StudentRef(lms="canvas", key=key, login=login, submission_id=sub, late=late,
                      attempt=attempt, original_name=original)


@pytest.mark.parametrize("filename, expected", [
    # the plain shape
    ("smithj_12345_678901_differentiation.ipynb",
     canvas("12345", "smithj", "678901", "differentiation.ipynb")),
    # the brief's example: late and resubmitted
    ("smithj_LATE_12345_678901_differentiation-2.ipynb",
     canvas("12345", "smithj", "678901", "differentiation.ipynb", late=True, attempt=2)),
    # Canvas has been seen writing the marker in lower case too
    ("smithj_late_12345_678901_differentiation.ipynb",
     canvas("12345", "smithj", "678901", "differentiation.ipynb", late=True)),
    # the student's own name keeps its underscores and digits
    ("doejane_2233_99812_my_lab_final_v2.ipynb",
     canvas("2233", "doejane", "99812", "my_lab_final_v2.ipynb")),
    ("doejane_2233_99812_2024_03_01_lab.ipynb",
     canvas("2233", "doejane", "99812", "2024_03_01_lab.ipynb")),
    ("doejane_2233_99812_hw_1_2.ipynb", canvas("2233", "doejane", "99812", "hw_1_2.ipynb")),
    # spaces, parentheses, dots in the student's name for the file
    ("doejane_2233_99812_Lab 1 (copy).ipynb", canvas("2233", "doejane", "99812", "Lab 1 (copy).ipynb")),
    ("doejane_2233_99812_lab.v2.final.ipynb", canvas("2233", "doejane", "99812", "lab.v2.final.ipynb")),
    # non-ASCII logins (Canvas lowercases the sortable name)
    ("müllerjürgen_4455_66778_ableitung.ipynb", canvas("4455", "müllerjürgen", "66778", "ableitung.ipynb")),
    ("nguyễnthịminhanh_LATE_4456_66779_bài_tập-1.ipynb",
     canvas("4456", "nguyễnthịminhanh", "66779", "bài_tập.ipynb", late=True, attempt=1)),
    ("王小明_4457_66780_作业.ipynb", canvas("4457", "王小明", "66780", "作业.ipynb")),
    # robust to underscores and digits in the login itself
    ("van_der_berg_12345_678901_x.ipynb", canvas("12345", "van_der_berg", "678901", "x.ipynb")),
    ("smithj2_12345_678901_x.ipynb", canvas("12345", "smithj2", "678901", "x.ipynb")),
    ("o_brien_LATE_12345_678901_x.ipynb", canvas("12345", "o_brien", "678901", "x.ipynb", late=True)),
    # a login that is the word "late" is a login, not a marker
    ("late_12345_678901_x.ipynb", canvas("12345", "late", "678901", "x.ipynb")),
    # a numeric login
    ("20231234_12345_678901_x.ipynb", canvas("12345", "20231234", "678901", "x.ipynb")),
    # paths: only the last part counts, / or \
    ("submissions/week 3/smithj_12345_678901_x.ipynb", canvas("12345", "smithj", "678901", "x.ipynb")),
    ("C:\\Users\\t\\Downloads\\smithj_12345_678901_x.ipynb", canvas("12345", "smithj", "678901", "x.ipynb")),
    # resubmission suffixes
    ("smithj_12345_678901_differentiation-10.ipynb",
     canvas("12345", "smithj", "678901", "differentiation.ipynb", attempt=10)),
    ("smithj_12345_678901_notes-3", canvas("12345", "smithj", "678901", "notes", attempt=3)),
    ("smithj_12345_678901_lab-2024.ipynb", canvas("12345", "smithj", "678901", "lab-2024.ipynb")),
    ("smithj_12345_678901_data-1.2.csv", canvas("12345", "smithj", "678901", "data-1.2.csv")),
    ("smithj_12345_678901_-2.ipynb", canvas("12345", "smithj", "678901", "-2.ipynb")),
])
def test_parse_canvas_name(filename, expected):
    assert parse_canvas_name(filename) == expected


@pytest.mark.parametrize("filename", [
    "differentiation.ipynb",                      # renamed by hand
    "smithj_12345_differentiation.ipynb",         # only one number
    "12345_678901_x.ipynb",                       # no login in front
    "_12345_678901_x.ipynb",                      # empty login
    "smithj_12345_678901_",                       # no file name after the ids
    "smithj_12a45_678901_x.ipynb",                # not a number
    "smithj_１２３_６７８_x.ipynb",                 # full-width digits are not Canvas ids
    "Jane Doe_880101_assignsubmission_file_",     # a Moodle folder
    "",
])
def test_parse_canvas_name_rejects(filename):
    assert parse_canvas_name(filename) is None


def test_parse_canvas_name_normalises_decomposed_accents():
    nfd = unicodedata.normalize("NFD", "müllerjürgen_4455_66778_Übung.ipynb")
    ref = parse_canvas_name(nfd)
    assert ref.login == "müllerjürgen" and ref.original_name == "Übung.ipynb"
    assert unicodedata.is_normalized("NFC", ref.login)


def test_split_attempt():
    assert split_attempt("differentiation-2.ipynb") == ("differentiation.ipynb", 2)
    assert split_attempt("differentiation.ipynb") == ("differentiation.ipynb", 0)
    assert split_attempt("a-b-3.tar") == ("a-b.tar", 3)
    assert split_attempt("lab-0.ipynb") == ("lab-0.ipynb", 0)


def moodle(key, name):
    return StudentRef(lms="moodle", key=key, name=name)


@pytest.mark.parametrize("folder, expected", [
    ("Jane Doe_880101_assignsubmission_file_", moodle("880101", "Jane Doe")),
    ("José Álvarez Pérez_880102_assignsubmission_file_", moodle("880102", "José Álvarez Pérez")),
    ("Nguyễn Thị Minh Anh_880103_assignsubmission_file_", moodle("880103", "Nguyễn Thị Minh Anh")),
    # underscores and digits inside the name: the id is the last number before the suffix
    ("Jan_de Vries_880104_assignsubmission_file_", moodle("880104", "Jan_de Vries")),
    ("Team_42_880105_assignsubmission_file_", moodle("880105", "Team_42")),
    ("Mary-Jane O'Neil_880106_assignsubmission_file_", moodle("880106", "Mary-Jane O'Neil")),
    ("王小明_880107_assignsubmission_file_", moodle("880107", "王小明")),
    ("Ahmed Al-Farsi (Ahmed)_880108_assignsubmission_file_", moodle("880108", "Ahmed Al-Farsi (Ahmed)")),
    # online text submissions come in the same shape
    ("Jane Doe_880101_assignsubmission_onlinetext_", moodle("880101", "Jane Doe")),
    # a path, a trailing slash, a trailing underscore lost by an unzip tool
    ("downloads/Lab 3/Jane Doe_880101_assignsubmission_file_/", moodle("880101", "Jane Doe")),
    ("Jane Doe_880101_assignsubmission_file", moodle("880101", "Jane Doe")),
    # blind marking
    ("Participant_880101_assignsubmission_file_", moodle("880101", "Participant")),
])
def test_parse_moodle_folder(folder, expected):
    assert parse_moodle_folder(folder) == expected


@pytest.mark.parametrize("folder", [
    "Jane Doe_assignsubmission_file_",            # no participant id
    "_880101_assignsubmission_file_",             # no name
    " _880101_assignsubmission_file_",            # a blank name
    "Jane Doe_88a101_assignsubmission_file_",     # not a number
    "Jane Doe_880101_file_",                      # not a Moodle submission folder
    "Jane Doe_880101_assignsubmission_file_lab.ipynb",   # a file, not a folder
    "smithj_12345_678901_x.ipynb",                # a Canvas name
    "",
])
def test_parse_moodle_folder_rejects(folder):
    assert parse_moodle_folder(folder) is None


def test_parse_moodle_folder_normalises_decomposed_accents():
    nfd = unicodedata.normalize("NFD", "José Álvarez_880102_assignsubmission_file_")
    assert parse_moodle_folder(nfd).name == "José Álvarez"
