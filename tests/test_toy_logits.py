"""The notebooks' shared toy logits: the same draws as the inline code they replaced, and their structure."""
import pytest
import torch

from ldrld_mini.toy_logits import peaked_logits, sibling_logits


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_peaked_logits_are_the_inline_draws(dtype):
    torch.manual_seed(3)
    teacher, student = peaked_logits(4, 10, dtype=dtype)
    torch.manual_seed(3)
    inline_teacher = torch.randn(4, 10, dtype=dtype) * 2.0
    inline_teacher[:, 0] += 10.0
    inline_student = inline_teacher + torch.randn(4, 10, dtype=dtype) * 1.5
    assert teacher.dtype == dtype
    torch.testing.assert_close(teacher, inline_teacher, rtol=0, atol=0)
    torch.testing.assert_close(student, inline_student, rtol=0, atol=0)


def test_sibling_logits_are_the_inline_draws():
    torch.manual_seed(5)
    target, teacher, student = sibling_logits(6, 20)
    torch.manual_seed(5)
    inline_target = torch.randint(0, 20, (6,))
    siblings = (torch.arange(20) // 5 == inline_target[:, None] // 5).double()
    inline_teacher = 1.5 * torch.randn(6, 20, dtype=torch.float64) + 4.0 * siblings
    inline_teacher[torch.arange(6), inline_target] += 5.0
    inline_student = 0.5 * inline_teacher + 1.5 * torch.randn(6, 20, dtype=torch.float64)
    assert torch.equal(target, inline_target)
    torch.testing.assert_close(teacher, inline_teacher, rtol=0, atol=0)
    torch.testing.assert_close(student, inline_student, rtol=0, atol=0)


@pytest.mark.parametrize("call, name", [(lambda: peaked_logits(0, 10), "batch"),
                                        (lambda: sibling_logits(4, 3), "classes")])
def test_bad_shapes_are_refused(call, name):
    with pytest.raises(ValueError, match=name):
        call()
