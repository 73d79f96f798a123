def main() -> None:
    raise SystemExit("not built yet")


if __name__ == "__main__":
    main()
