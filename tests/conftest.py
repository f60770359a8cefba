"""Fixtures shared by several test files."""
import pytest
import torch

from ldrld_mini.models import build_model


@pytest.fixture
def trained_resnet8():
    """resnet8 (10 classes) with random BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    return model.eval()
