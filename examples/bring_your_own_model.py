"""Bring your own model: a torchvision ResNet-18 trained by your own loop on CIFAR-10, attacked by
robustcv from Python, with the same report and numbers as ``robustcv attack``.

    python examples/bring_your_own_model.py                     # CIFAR-10 files in ./data
    python examples/bring_your_own_model.py --data-root D --epochs 1 --n 100 --out reports/resnet18

The CIFAR-10 python files must be in DATA_ROOT/cifar-10-batches-py (no download). The lines
between the markers are the README's example.
"""
import argparse

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-root", default="data")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--n", type=int, default=200)
parser.add_argument("--out", default="reports/resnet18")
parser.add_argument("--export", default="resnet18.pt2", help="also export for `robustcv attack --model-file`")
args = parser.parse_args()
root, epochs, n, out = args.data_root, args.epochs, args.n, args.out

# --- README example -----------------------------------------------------------------------------
import robustcv, torch, torchvision
from torchvision.transforms import ToTensor
train = torchvision.datasets.CIFAR10(root, train=True, transform=ToTensor())   # images in [0, 1]
net = robustcv.with_normalization(torchvision.models.resnet18(num_classes=10),
                                  mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
for x, y in (b for _ in range(epochs) for b in torch.utils.data.DataLoader(train, 128, shuffle=True)):
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
results = robustcv.evaluate(net, "cifar10", data_root=root, eps=["1/255", "4/255", "8/255"], n=n, name="resnet18")
results.report(out)                                                       # report.html + report.md
# --- end of the README example ------------------------------------------------------------------

print({eps: round(value, 3) for eps, value in results.robust_accuracy().items()})
if args.export:  # the same model for the CLI: robustcv attack --model-file resnet18.pt2 --dataset cifar10 ...
    example = torch.rand(2, 3, 32, 32)  # a batch of two: the batch dimension stays dynamic
    program = torch.export.export(net.eval(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, args.export)
