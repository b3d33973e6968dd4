import pytest
from hypothesis import given, settings, strategies as st

from emreason import prompts as P
from emreason.data import Example

EX = Example("q", "What do plants need to make food?",
             (("A", "sunlight"), ("B", "sand"), ("C", "noise"), ("D", "darkness")), "A", "t")
NUM = Example("n", "Pick", (("1", "red"), ("2", "green"), ("3", "blue"), ("4", "black")), "2", "t")


@pytest.mark.parametrize("text,expected", [
    ("Plants use light.\nThe answer is (A).", "A"),
    ("so the answer is A.", "A"),
    ("Answer: C", "C"),
    ("The correct option is B because...", "B"),
    ("Reasoning... Final answer: \\boxed{D}", "D"),
    ("\\boxed{(b)}", "B"),
    ("The answer is (A). The answer is (A).", "A"),
    ("The answer is sunlight.", "A"),
    ("Thinking.\nsunlight", "A"),
    ("The answer is (A) and trailing words that go on", "A"),
    ("**The answer is (C)**", "C"),
    ("(D) Darkness. Plants need light, so the answer is (A).", None),  # commits twice: ambiguous
    ("The answer is (A). Actually the answer is (B).", None),
    ("The answer is a plant thing", None),  # an article, not a label
    ("I am not sure.", None),
    ("", None),
    ("The answer is (A)\nThe answer is (B)\nThe answer is (C)\nThe answer is (D)", None),
    # an enumeration header is not a commitment (Qwen2.5-1.5B writes these before every option)
    ("Now, let's analyze each option:\n\n(A)", None),
    ("Let's look at each answer choice:\n(B) sand is not food.\nThe answer is (A).", "A"),
    ("Let's check each option:\n\nOption C: noise.", None),
    ("Each answer:\nsunlight gives energy.", None),
    ("The correct answer is:\n\n(A) sunlight", "A"),
    ("The answer is:\nsunlight", "A"),
])
def test_extract_answer(text, expected):
    assert P.extract_answer(text, EX) == expected


def test_numeric_published_labels_map_to_letters():
    assert P.extract_answer("The answer is (2).", NUM) == "B"
    assert P.extract_answer("The answer is B.", NUM) == "B"


def test_a_number_that_is_no_label_is_read_as_the_choice_with_that_text():
    # MMLU's choices are often numbers; "The answer is 4" names the choice "4", not a label "4"
    math = Example("m", "2 + 2 = ?", (("A", "3"), ("B", "4"), ("C", "13"), ("D", "22")), "B", "t")
    assert P.extract_answer("2 + 2 is 4. The answer is 4.", math) == "B"
    assert P.extract_answer("The answer is (13).", math) == "C"
    assert P.extract_answer("\\boxed{22}", math) == "D"
    # a number that names no choice is a commitment to no choice: a wrong answer, not a guess
    assert P.extract_answer("The answer is 7.", math) == "7"
    assert P.extract_answer("The answer is 7. The answer is (B).", math) is None
    # a published label still wins (ARC numbers some questions' choices 1-4)
    assert P.extract_answer("The answer is (2).", NUM) == "B"


def test_answer_first_is_a_commitment():
    kinds = [c.kind for c in P.find_commitments("(A) sunlight. Because light.", EX)]
    assert kinds == ["answer_first"]
    assert P.extract_answer("(A) sunlight. Because light.", EX) == "A"


@pytest.mark.parametrize("text,done", [
    ("so the answer is (B", False),
    ("so the answer is (B)", True),
    ("so the answer is B", False),
    ("so the answer is B.", True),
    ("The answer is a", False),
    ("\\boxed{C}", True),
    ("no answer yet", False),
    ("Now, let's analyze each option:\n\n(A)", False),
    ("The answer is:\n\n(C)", True),
])
def test_answer_is_complete(text, done):
    assert P.answer_is_complete(text) is done


def test_prompt_modes():
    cot = P.user_message(EX, "cot")
    hinted = P.user_message(EX, "hinted")
    direct = P.user_message(EX, "direct")
    assert "(A) sunlight" in cot and "(D) darkness" in cot and "step by step" in cot
    assert "The correct answer is (A)" in hinted and "(A)" in hinted
    assert "correct answer is" not in cot and "correct answer is" not in direct
    with pytest.raises(ValueError):
        P.user_message(EX, "bogus")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_extraction_never_crashes(text):
    r = P.extract_answer(text, EX)
    assert r is None or isinstance(r, str)
    P.answer_is_complete(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from("ABCD"), st.text(alphabet=st.characters(blacklist_characters="()ABCDEFGHIJ0123456789\\"), max_size=200))
def test_a_single_answer_line_after_any_rationale_is_read(letter, rationale):
    assert P.extract_answer(f"{rationale}\nThe answer is ({letter}).", EX) == letter
