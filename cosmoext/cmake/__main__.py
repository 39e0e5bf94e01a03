from . import get_cmake_dir

print(get_cmake_dir())
