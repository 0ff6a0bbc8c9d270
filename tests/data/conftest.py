"""Fixtures for the data tests."""
import pytest
from PIL import Image


@pytest.fixture
def image_dir(tmp_path):
    """tmp_path/imgs with a.png (200x100) and b.jpg (64x48)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (200, 100), (10, 200, 10)).save(folder / "a.png")
    Image.new("RGB", (64, 48), (10, 10, 200)).save(folder / "b.jpg")
    return folder
