"""`cnnlab-convert-weights <file> --model <name> --out <dir>`: Keras or torchvision weights as an orbax checkpoint.

    cnnlab-convert-weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 --model vgg16 --out pretrained/vgg16
    cnnlab-convert-weights resnet18-f37072fd.safetensors --model resnet18 --out pretrained/resnet18
    cnnlab-convert-weights vgg11_bn.pth --model vgg11 --option batch_norm=true --out pretrained/vgg11_bn
    cnnlab-train model=resnet18 transfer=feature_extractor transfer.from_run=pretrained/resnet18 ...

The output has a run directory's layout (`<out>/checkpoints/0`), which
`transfer.from_run` reads. An existing checkpoint there is never overwritten.
"""

import argparse
import sys
from pathlib import Path

import yaml


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="cnnlab-convert-weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("file", type=Path, help="a Keras .h5 / .weights.h5, torchvision .safetensors or .pth file")
    parser.add_argument("--model", required=True, help="the cnnlab model name, e.g. vgg16, resnet50_keras, resnet18")
    parser.add_argument("--out", required=True, type=Path, help="the directory to write (a run directory's layout)")
    parser.add_argument("--input-shape", help="H,W,C the model will see (default: the architecture's own); it "
                                              "fixes VGG's and AlexNet's first fully connected layer")  # fmt: skip
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option, e.g. batch_norm=true (repeatable)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import jax

    from cnnlab import models, transfer  # after argparse: --help stays fast
    from cnnlab.transfer import checkpoints, heads

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"cnnlab-convert-weights: --option {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        options[key] = yaml.safe_load(value)  # true -> True, 0.5 -> 0.5, [1,2] -> [1, 2]
    shape = tuple(int(n) for n in args.input_shape.split(",")) if args.input_shape else None
    target = args.out / "checkpoints" / "0"
    try:
        shape = shape or models.default_input_shape(args.model)
        if target.exists():
            raise FileExistsError(f"{target} already exists; choose another --out")
        variables = transfer.load_weights(args.file, model=args.model, input_shape=shape, **options)
    except (ValueError, OSError) as error:  # unknown model, unreadable or mismatched file, existing output
        print(f"cnnlab-convert-weights: {error}", file=sys.stderr)
        return 1
    classifier = heads.head_paths(models.create(args.model, num_classes=1, **options))[0][0]
    classes = variables["params"][classifier]["bias"].shape[-1]
    config = {"model": {"name": args.model, **options, "input_shape": list(shape)}, "source": str(args.file)}
    written = checkpoints.write(args.out, variables, config=config)
    count = sum(int(v.size) for v in jax.tree.leaves(variables["params"]))
    print(f"{args.file} -> {written}: {args.model}, {classes} classes, {count:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
